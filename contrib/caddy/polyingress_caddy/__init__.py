"""polyingress-caddy: a polyingress backend for Caddy 2, built only on ``polyingress.core``.

``render.py`` turns the core's RouteModel into Caddy's JSON configuration, ``admin.py`` loads it
through Caddy's admin API on a UNIX socket, ``process.py`` runs Caddy, ``plugin.py`` is the
backend (one class) and its ``backend_plugin`` call (the ``polyingress.backends`` entry point).
"""
