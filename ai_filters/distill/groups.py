"""Which documents belong together: the group key of the held-out split.

Pieces cut from one text, or pages of one site, share words, names and style; a model that
trained on some of them and is measured on the others is measured on documents it has nearly
seen. So the split holds out whole groups: a document's group is the value of a metadata field
naming its source (:func:`group_of`), and the held-out rule hashes the group, not the id.

- ``source_text`` (the default, :data:`DEFAULT_GROUP_KEY`): the text a piece of the local
  corpus was cut from (``ai_filters.demo.corpus``);
- ``url_host`` (:data:`URL_HOST`): the host of ``metadata["url"]``, lower-cased as
  ``urllib.parse`` gives it (``www.example.org`` and ``example.org`` are two groups): web data
  such as FineWeb, whose documents carry their URL;
- ``none`` (:data:`NO_GROUPS`): every document is its own group (the split by id);
- any other name: that metadata field, its value as a string.

A document without the field (missing, null or empty; for ``url_host`` no URL with a host) is
its own group: its id is hashed in place of a group.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from ai_filters.fields import SOURCE_TEXT_KEY

DEFAULT_GROUP_KEY = SOURCE_TEXT_KEY
URL_HOST = "url_host"
NO_GROUPS = "none"
GROUP_RULE = (
    "a document's group is the value of metadata[group_key] ('url_host': the host of "
    "metadata['url']; 'none': no groups); a document without it is its own group (its id)"
)


def group_of(metadata: Mapping, group_key: str) -> str | None:
    """The group of a document with ``metadata`` under ``group_key`` (see the module
    docstring); ``None``: it has none, so it is its own group."""
    if group_key == NO_GROUPS:
        return None
    if group_key == URL_HOST:
        url = metadata.get("url")
        try:
            host = urlsplit(url).hostname if isinstance(url, str) else None
        except ValueError:  # not a URL (an unbalanced '[' in the host, say)
            host = None
        return host or None
    value = metadata.get(group_key)
    if value is None or value == "":
        return None
    return str(value)
