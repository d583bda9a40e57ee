"""`make bench`: one unattended run that measures the whole chain against baselines taken in the same run.

The machine is shared and noisy, so no figure stands alone: each latency sits next to a plain broker
round trip (one hop, and two hops through a trivial forwarder: the floor the gateway stands on)
measured under the same load at the same moment, and the report gives the ratio and the difference."""
