"""Scale-out: many workers (replicas) behind one ingress that keeps protocol v1 (docs/scale.md).

router.py places sessions on replicas (sticky, away from loaded ones); ingress.py is the ZeroMQ front that
forwards each session's audio and control to its replica and merges the replicas' motion into one PUB;
ray_serve.py runs the replicas and the ingress as Ray Serve deployments (the optional `[scale]` extra).
"""
