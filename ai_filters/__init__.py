"""AttentionInfluence (arXiv 2505.07293) data selection for the Hugging Face pretraining stack.

Modules, in the order data flows through them: ``models`` (load the selector), ``probes`` and
``heads`` (find retrieval heads), ``masking`` (mask them), ``scoring`` (the engine),
``documents`` and ``score_files`` (files of documents), ``report`` (per-domain statistics),
``corpus`` and ``demo`` (the offline demo), ``cli`` (the ``ai-filters`` command).
"""

__version__ = "0.1.0"
