"""What lets several replicas of the bot share one job: the state they keep in the cluster.

With ``DEVENV_STATE_BACKEND=kubernetes`` the Kubernetes API is the store and the coordinator, as
for Kubernetes controllers: environment records are ``DevEnvironment`` custom resources written with
optimistic concurrency, ``coordination.k8s.io/v1`` Leases give one replica an operation on a
workspace (and the singletons to a leader), and DevPod's own state of each workspace is kept so any
replica can act on it. With the default ``file`` backend none of this runs: one process, its state
directory. See docs/operations.md.
"""
