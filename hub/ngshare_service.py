"""Start ngshare, the exchange service, for the class hub (``MLM_EXCHANGE=service``).

JupyterHub runs this as a managed service (``hub/jupyterhub_config.py``)
with the hub environment's Python; the arguments are ngshare's own
(``--admins``, ``--database``, ``--storage``).  Two changes to ngshare 0.6.0:

* it listens on loopback only.  ngshare itself binds every network interface
  (it expects a Kubernetes pod); on a shared machine the hub and the users'
  servers reach it on 127.0.0.1, and nothing else needs to;
* an API call without a token the hub knows is answered 403 at once.
  ngshare 0.6.0 lets such a call run on with no user and fail with a
  server error (500) - refused as well, but as a crash.
"""

import sys

from ngshare import ngshare as _ngshare
from tornado.httpserver import HTTPServer


class LoopbackHTTPServer(HTTPServer):
    """ngshare's server, bound to 127.0.0.1 whatever address it asks for."""

    def listen(self, port, address="", **kwargs):
        super().listen(port, "127.0.0.1", **kwargs)


_ngshare.HTTPServer = LoopbackHTTPServer

_prepare = _ngshare.MyRequestHandler.prepare
# Its own pages, which send a browser through the hub's log-in instead.
_BROWSER_PAGES = (_ngshare.HomePage, _ngshare.Static, _ngshare.InitDatabase)


def _prepare_known_callers_only(self):
    _prepare(self)
    if self.user is None and not isinstance(self, _BROWSER_PAGES):
        self.json_error(403, "Permission denied (no valid JupyterHub token)")


_ngshare.MyRequestHandler.prepare = _prepare_known_callers_only

if __name__ == "__main__":
    sys.exit(_ngshare.main(sys.argv[1:]))
