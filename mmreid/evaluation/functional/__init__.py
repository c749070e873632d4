"""Pure numpy/torch evaluation functions (no mmengine)."""
from .distance import DISTANCE_METRICS, GalleryDistance, compute_distance
from .evaluate import Scorer, evaluate_features, evaluate_features_multi
from .junk_rules import (JUNK_PID, JUNK_RULES, JunkRule, get_junk_rule,
                         junk_label_gallery, market_junk, no_junk,
                         rule_with_junk_label, sysu_junk)
from .mnet_distance import (PAIR_DISTANCE_MODES, MNetPairScorer,
                            PairDistanceOptions, make_mnet_scorer,
                            mnet_distances)
from .mnet_logits import (PAIR_SCORING_METHODS, fold_mnet_batchnorm,
                          max_abs_logit_error, mnet_pair_logits)
from .protocols import (NUM_OFFICIAL_TRIALS, NUM_SYSU_CAMS, RAND_PERM_LAYOUT,
                        PoolGroups, RandPermCam, classic_cmc,
                        count_valid_positives, group_pool,
                        normalize_rand_perm_cam, official_gallery_draw,
                        seeded_gallery_draw, summarize_partitions)
from .query_expansion import query_expansion
from .rank import (AP_MODES, CMC_MODES, DEFAULT_MEMORY_BUDGET_MB, TIE_POLICIES,
                   RankAccumulator, ReIDEvalResult, chunk_rows_for_budget,
                   evaluate_rank)
from .reference import reference_evaluate_rank
from .rerank import k_reciprocal_rerank, k_reciprocal_rerank_distances
from .verification import (DEFAULT_FPRS, VerificationResult,
                           evaluate_verification,
                           evaluate_verification_features, tpr_at_fpr)

__all__ = [
    'compute_distance', 'GalleryDistance', 'evaluate_rank',
    'evaluate_features', 'evaluate_features_multi', 'ReIDEvalResult',
    'RankAccumulator',
    'chunk_rows_for_budget', 'get_junk_rule', 'market_junk', 'no_junk',
    'sysu_junk', 'JUNK_PID', 'JUNK_RULES', 'junk_label_gallery',
    'rule_with_junk_label', 'JunkRule', 'Scorer', 'DISTANCE_METRICS',
    'TIE_POLICIES', 'AP_MODES', 'CMC_MODES', 'DEFAULT_MEMORY_BUDGET_MB',
    'reference_evaluate_rank', 'evaluate_verification',
    'evaluate_verification_features', 'tpr_at_fpr', 'VerificationResult',
    'DEFAULT_FPRS', 'k_reciprocal_rerank', 'k_reciprocal_rerank_distances',
    'query_expansion', 'mnet_pair_logits', 'mnet_distances',
    'max_abs_logit_error', 'MNetPairScorer', 'make_mnet_scorer',
    'fold_mnet_batchnorm', 'PAIR_SCORING_METHODS', 'PAIR_DISTANCE_MODES',
    'group_pool', 'PoolGroups', 'seeded_gallery_draw', 'official_gallery_draw',
    'normalize_rand_perm_cam', 'RandPermCam', 'RAND_PERM_LAYOUT',
    'NUM_OFFICIAL_TRIALS', 'NUM_SYSU_CAMS', 'classic_cmc',
    'count_valid_positives', 'summarize_partitions', 'PairDistanceOptions'
]
