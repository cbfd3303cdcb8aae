"""Where objects come from: a directory of manifests (``manifests``, the embedded default)
or the Kubernetes API server (``kubernetes``)."""
