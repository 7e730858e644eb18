"""Public holidays for the business calendar, from the `holidays` library.

A thin adapter: when a process loads its settings, the country named by
`business_hours.public_holidays` gives its days off and its worked weekend days (mainland
China's 调休) for last year to two years ahead, merged into the policy's explicit lists.
Tickets then carry plain dates in their policy, so a library upgrade never changes how a
running ticket replays.
"""

from __future__ import annotations

from datetime import date

import holidays

from workflows.policy import ServicePolicy

# Years around today that are resolved: a ticket opened late in December still finds
# next year's holidays, and one open for many months the year after.
YEARS_BEHIND, YEARS_AHEAD = 1, 2


def public_holidays(country: str, years: range) -> tuple[set[date], set[date]]:
    """Days off and worked weekend days of `country` ("CN", or "US-NY" for a subdivision)."""
    code, _, subdivision = country.partition("-")
    try:
        calendar = holidays.country_holidays(code, subdiv=subdivision or None, years=years)
    except NotImplementedError:
        raise ValueError(
            f"public_holidays {country!r}: the holidays library knows no such country"
        ) from None
    # weekend_workdays may hold other years the library has seen: keep the asked ones.
    return set(calendar), {day for day in calendar.weekend_workdays if day.year in years}


def with_public_holidays(policy: ServicePolicy, today: date) -> ServicePolicy:
    calendar = policy.business_hours
    if calendar.public_holidays is None:
        return policy
    years = range(today.year - YEARS_BEHIND, today.year + YEARS_AHEAD + 1)
    off, worked = public_holidays(calendar.public_holidays, years)
    resolved = calendar.model_copy(
        update={
            "holidays": sorted(off | set(calendar.holidays)),
            "workdays": sorted(worked | set(calendar.workdays)),
        }
    )
    return policy.model_copy(update={"business_hours": resolved})
