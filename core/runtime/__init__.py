"""The program around the pipeline: the reconciler (``controller``), backend discovery
(``plugins``), the health and metrics server (``health``), the command line (``cli``), the
demo (``demo``) and its hello backends (``hello``)."""
