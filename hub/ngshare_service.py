"""Start ngshare, the exchange service, for the class hub (``MLM_EXCHANGE=service``).

JupyterHub runs this as a managed service (``hub/jupyterhub_config.py``)
with the hub environment's Python; the arguments are ngshare's own
(``--admins``, ``--database``, ``--storage``).  The one change to ngshare
0.6.0: it listens on loopback only.  ngshare itself binds every network
interface (it expects a Kubernetes pod); on a shared machine the hub and the
users' servers reach it on 127.0.0.1, and nothing else needs to.
"""

import sys

from ngshare import ngshare as _ngshare
from tornado.httpserver import HTTPServer


class LoopbackHTTPServer(HTTPServer):
    """ngshare's server, bound to 127.0.0.1 whatever address it asks for."""

    def listen(self, port, address="", **kwargs):
        super().listen(port, "127.0.0.1", **kwargs)


_ngshare.HTTPServer = LoopbackHTTPServer

if __name__ == "__main__":
    sys.exit(_ngshare.main(sys.argv[1:]))
