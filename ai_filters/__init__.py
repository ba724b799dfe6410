"""AttentionInfluence (arXiv 2505.07293) data selection for the Hugging Face pretraining stack.

Subpackages, in the order data flows through them: ``engine`` (load a selector, find its
retrieval heads, mask them, score documents), ``selection`` (the output folder, the
top-fraction rule per domain, the report, status, comparing selections), ``distill`` (a fast
text model trained on a selection's scores), ``blocks`` (the datatrove steps and the scorer
registry) run by ``executors`` (local or Slurm), then ``hub`` (the dataset folder, its card,
the push), ``nanotron`` (training configs) and ``proxy`` (proxy pretraining runs); ``demo``
holds the offline demo and ``cli`` the ``ai-filters`` command. The top-level modules are
shared by all: ``fields`` (field names, skip reasons), ``documents``, ``domains``,
``training``, ``console`` and ``markdown``. docs/design.md maps every module and says which
part may import which.
"""

__version__ = "0.1.0"
