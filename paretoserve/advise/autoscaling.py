"""Ray Serve's autoscaling for the plan, from its measured capacity (advise/capacity.py).

- `target_ongoing_requests`: Little's law at the capacity, the requests each replica holds in flight there:
  (capacity_rps / replicas) x the knee's mean latency in seconds, less the headroom the replica counts keep
  (/ (1 + headroom)), within (0, the batch cap].
- `min_replicas` / `max_replicas`: the replicas the traffic's low (else its mean) and its peak (else its mean)
  need, as the capacity advice counted them; with no traffic, 1 up to the measured plan's replicas.
- `upscale_delay_s` / `downscale_delay_s`: how long Ray waits before it adds or removes a replica.

Plain data, no Ray import: ray_config.py writes it into both Ray Serve configs, with each field's reason.
"""

from __future__ import annotations

from pydantic import BaseModel

from paretoserve.advise.capacity import CapacityAdvice

MIN_TARGET = 0.01  # Ray wants a positive target; the arithmetic is rounded to 0.01 requests
UPSCALE_LIFETIMES = 2.0  # a rise in flight that outlasts two request lifetimes is load, not one burst draining
# Ray's handles and replicas push their request counts every metrics_interval_s (10 s by default, Ray 2.55)
UPSCALE_FLOOR_S = 10.0
DOWNSCALE_DELAY_S = 600.0  # Ray's own default: a removed replica must load its model again to come back


class Autoscaling(BaseModel):
    """The fields of Ray Serve's `autoscaling_config` for the plan (requests per replica, replicas, seconds) and
    one line of reason per field."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float  # requests per replica, running and queued at Ray's handles
    upscale_delay_s: float
    downscale_delay_s: float
    reasons: dict[str, str]  # field name -> its arithmetic or why, in words

    def ray_config(self) -> dict:
        """The `autoscaling_config` mapping of a Ray Serve deployment (Ray's AutoscalingConfig fields)."""
        return self.model_dump(exclude={"reasons"})


def target_requests(capacity: CapacityAdvice) -> tuple[float, str]:
    """(requests per replica, why): Little's law at the knee, capped at the batch cap; the cap itself when the
    knee has no latency, so Ray adds replicas only once every replica's batch is full."""
    cap, e2el_ms = capacity.max_batch, capacity.knee.mean_e2el_ms
    if not e2el_ms:
        return float(cap), f"the knee has no measured latency: the batch cap {cap}"
    h = capacity.headroom  # the same spare share the replica counts keep, so Ray's count matches them
    in_flight = capacity.per_replica_rps * e2el_ms / 1000 / (1 + h)
    target = min(float(cap), max(MIN_TARGET, round(in_flight, 2)))
    capped = f", capped at the batch cap {cap}" if in_flight > cap else ""
    return target, (f"Little's law at the capacity: {capacity.per_replica_rps:.3g} req/s per replica x "
                    f"{e2el_ms / 1000:.3g} s mean latency at the knee / (1 + {h:g} headroom) = {in_flight:.3g} "
                    f"requests in flight{capped}")


def replica_bounds(capacity: CapacityAdvice) -> tuple[int, int, str, str]:
    """(min_replicas, max_replicas, why min, why max) from the traffic's replica counts."""
    traffic, n = capacity.traffic, capacity.replicas
    if traffic is None or capacity.replicas_at_mean is None:
        # No traffic says how busy it gets: scale within what was measured, one device running the plan's replicas.
        return 1, n, "no traffic given: one replica when quiet", \
            f"no traffic given: the plan's {n} replica(s), whose capacity was measured (--traffic sizes beyond it)"
    low, low_rps, low_name = capacity.replicas_at_low, traffic.low_rps, "low"
    if low is None or low_rps is None:
        low, low_rps, low_name = capacity.replicas_at_mean, traffic.mean_rps, "mean (no low given)"
    high, high_rps, high_name = capacity.replicas_at_peak, traffic.peak_rps, "peak"
    if high is None or high_rps is None:
        high, high_rps, high_name = capacity.replicas_at_mean, traffic.mean_rps, "mean (no peak given)"
    h, per = capacity.headroom, capacity.per_replica_rps
    return low, max(low, high), \
        f"the traffic's {low_name}: {low_rps:.3g} req/s x (1 + {h:g} headroom) / {per:.3g} req/s per replica", \
        f"the traffic's {high_name}: {high_rps:.3g} req/s x (1 + {h:g} headroom) / {per:.3g} req/s per replica"


def autoscaling(capacity: CapacityAdvice, upscale_delay_s: float | None = None,
                downscale_delay_s: float | None = None) -> Autoscaling:
    """The autoscaling of the plan whose capacity is `capacity`; delays in seconds, None for the reasoned default:
    up after max(10 s, 2 x the knee's mean latency), down after Ray's 600 s."""
    target, why_target = target_requests(capacity)
    low, high, why_low, why_high = replica_bounds(capacity)
    reasons = {"target_ongoing_requests": why_target, "min_replicas": why_low, "max_replicas": why_high}
    if upscale_delay_s is None:
        lifetime_s = (capacity.knee.mean_e2el_ms or 0) / 1000
        upscale_delay_s = round(max(UPSCALE_FLOOR_S, UPSCALE_LIFETIMES * lifetime_s), 1)
        reasons["upscale_delay_s"] = (f"{UPSCALE_LIFETIMES:g} x the knee's mean latency ({lifetime_s:.3g} s), at "
                                      f"least {UPSCALE_FLOOR_S:g} s (Ray's metrics push): load that outlasts two "
                                      "request lifetimes is a rise, not a burst the replicas drain")
    else:
        reasons["upscale_delay_s"] = "given"
    if downscale_delay_s is None:
        downscale_delay_s = DOWNSCALE_DELAY_S
        reasons["downscale_delay_s"] = (f"Ray's default {DOWNSCALE_DELAY_S:g} s: a replica given up must load its "
                                        "model again to come back, so only a long lull removes one")
    else:
        reasons["downscale_delay_s"] = "given"
    return Autoscaling(min_replicas=low, max_replicas=high, target_ongoing_requests=target,
                       upscale_delay_s=upscale_delay_s, downscale_delay_s=downscale_delay_s, reasons=reasons)
