"""Pacing: rate limits, the platform's pauses, adaptive concurrency, a limiter shared via Redis.

``rate.py`` reads rates, ``local.py`` paces starts in one process (GCRA),
``adaptive.py`` is the AIMD concurrency limit, ``shared.py`` keeps the rate
limits in Redis for many processes (extra ``redis``, imported only when a
``limiter_url`` is given), and ``pacer.py`` puts them together for a client.
"""

from .adaptive import AdaptiveLimit
from .local import LocalRates
from .pacer import PAUSE_STATUSES, Pacer, RateBackend, Ticket
from .rate import PERIODS, Rate, parse_model_rates, parse_rate

__all__ = [
    "PAUSE_STATUSES",
    "PERIODS",
    "AdaptiveLimit",
    "LocalRates",
    "Pacer",
    "RateBackend",
    "Rate",
    "Ticket",
    "parse_model_rates",
    "parse_rate",
]
