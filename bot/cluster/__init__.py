"""The cluster adapters: browser links to a workspace through Kubernetes objects or a Cloudflare Tunnel.

Pure parts first: :mod:`~bot.cluster.workspace` (what a workspace exposes, checked once),
:mod:`~bot.cluster.links`, :mod:`~bot.cluster.manifests` (its Service and Ingresses),
:mod:`~bot.cluster.routers` (one backend per ingress controller and the forward-auth invariant),
:mod:`~bot.cluster.reconcile` (write or not) and :mod:`~bot.cluster.tunnel_rules`. Then the
I/O: :mod:`~bot.cluster.kube` (the Kubernetes client) under :mod:`~bot.cluster.exposure`
(``Exposure``, the applier; ``ExposureSettings``), and :mod:`~bot.cluster.cloudflare_api` under
:mod:`~bot.cluster.cloudflare` (``CloudflareTunnelRoutes``; ``CloudflareSettings``).
"""
