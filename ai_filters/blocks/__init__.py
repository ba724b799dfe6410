"""datatrove pipeline blocks, one per file; usable in your own datatrove pipelines.

Scorers (keep every document they can score, its score under their ``score_key``):
:class:`AttentionInfluenceScorer` (the method; ``mask_mode="zero"``: the zero ablation),
:class:`PerplexityScorer` and :class:`RandomScorer` (the controls), :class:`DistilledScorer`
(a fast text model distilled from a selection's scores). Selection:
:class:`ScoreTableWriter` (every scored document without its text), :class:`ThresholdFinder`
(one task: the per-domain thresholds from those tables), :class:`ThresholdFilter` and
:class:`HubShardWriter` (the selected and rejected documents, flat columns in the Hub's layout).
Writing: :class:`StagedJsonlWriter` (it and the writers above publish a file only once it is
whole, ``staged.py``). Reading: :class:`DomainsReader`. Reporting: :class:`SelectionReport`.
Tokenizing for nanotron: :class:`FolderTokenizer`.
"""

from ai_filters.blocks.attention_influence import AttentionInfluenceScorer
from ai_filters.blocks.distilled import DistilledScorer
from ai_filters.blocks.hub_shards import HubShardWriter
from ai_filters.blocks.perplexity import PerplexityScorer
from ai_filters.blocks.random_scorer import RandomScorer
from ai_filters.blocks.readers import DomainsReader
from ai_filters.blocks.report import SelectionReport
from ai_filters.blocks.score_table import ScoreTableWriter
from ai_filters.blocks.staged import StagedJsonlWriter
from ai_filters.blocks.threshold_filter import ThresholdFilter
from ai_filters.blocks.threshold_finder import ThresholdFinder
from ai_filters.blocks.tokens import FolderTokenizer

__all__ = [
    "AttentionInfluenceScorer",
    "DistilledScorer",
    "ThresholdFilter",
    "ThresholdFinder",
    "DomainsReader",
    "FolderTokenizer",
    "HubShardWriter",
    "PerplexityScorer",
    "RandomScorer",
    "ScoreTableWriter",
    "SelectionReport",
    "StagedJsonlWriter",
]
