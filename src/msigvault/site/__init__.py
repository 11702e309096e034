"""A keyholder site's online side and its air-gapped step (issue 16; docs/site.md).

- :mod:`.request`: the request and response files that cross the air gap (offline: the laptop's part).
- :mod:`.online`: pull requests sealed to the site's identity and push the answers sealed to the
  coordinator, over the coordinator service or through a shared folder.
- :mod:`.folder`: the shared folder's layout; :mod:`.sync`: the coordinator's ``folder-sync``.

Submodules are imported on use: the laptop's commands need neither httpx nor SQLAlchemy.
"""

from __future__ import annotations

from .errors import FolderError, SiteError, SiteRequestError, SiteResponseError
from .request import SiteRequest, SiteResponse

__all__ = ["SiteError", "SiteRequestError", "SiteResponseError", "FolderError", "SiteRequest", "SiteResponse"]
