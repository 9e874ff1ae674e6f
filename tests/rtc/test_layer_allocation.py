"""The subscriber's estimate drives the simulcast layer choice (no network): `allocate()`
gives each down-track an allowance, a simulcast down-track takes the highest layer that fits
it and its tile, and is paused for the budget only when not even the lowest layer fits."""

from __future__ import annotations

from rtc.bandwidth import allocate
from rtc.downtrack import PAUSE_BACKOFF, DownTrack
from rtc.simulcast import SimulcastForwarder
from rtc.subscriber import Subscriber
from tests.rtc.test_simulcast import Publisher, Writer, make, run

RATES = [150_000, 500_000, 1_500_000]


def setup() -> tuple[SimulcastForwarder, Publisher, Writer, DownTrack]:
    forwarder, publisher, upstream, downtrack, _out = make([0, 1, 2])
    run(publisher, upstream, 5)
    assert downtrack.layer == "f"
    forwarder.rates[:] = RATES  # as measured by the forwarder's tick
    return forwarder, publisher, upstream, downtrack


def budget_round(
    budget: int, downtracks: list[DownTrack], now: float, congested: bool = True
) -> dict[DownTrack, int]:
    """What `Subscriber.allocate_budget` does with an estimate, for these down-tracks."""
    demands = [Subscriber._demand(dt, None) for dt in downtracks]
    allowed = allocate(budget, demands)
    for demand in demands:
        assert isinstance(demand.key, DownTrack)
        demand.key.set_allowance(allowed[demand.key], demand.bitrate, now, congested, demand.layers)
    return {d.key: allowed[d.key] for d in demands}  # type: ignore[misc]


def test_demand_lists_the_layers_the_tile_wants() -> None:
    _forwarder, _publisher, _upstream, downtrack = setup()
    demand = Subscriber._demand(downtrack, None)
    assert demand.layers == tuple(RATES) and demand.bitrate == RATES[2]
    downtrack.set_view(300, 170)  # a thumbnail: only q is wanted
    assert Subscriber._demand(downtrack, None).layers == (RATES[0],)


def test_a_budget_that_fits_the_top_layer_keeps_it() -> None:
    _forwarder, publisher, upstream, downtrack = setup()
    budget_round(2_000_000, [downtrack], 0.0)
    run(publisher, upstream, 3)
    assert downtrack.layer == "f" and downtrack.budget_layer in (None, 2)
    assert not downtrack.budget_paused


def test_a_budget_that_fits_only_h_or_only_q_gets_that_layer() -> None:
    _forwarder, publisher, upstream, downtrack = setup()
    budget_round(800_000, [downtrack], 0.0)
    assert downtrack.target == "h"
    run(publisher, upstream, 3)
    assert downtrack.layer == "h" and not downtrack.budget_paused
    budget_round(300_000, [downtrack], 1.0)
    run(publisher, upstream, 3)
    assert downtrack.layer == "q" and not downtrack.budget_paused
    # the estimate grows again: straight back up to what fits (the allowance is the evidence)
    budget_round(2_000_000, [downtrack], 2.0)
    run(publisher, upstream, 3)
    assert downtrack.layer == "f"


def test_nothing_fits_pauses_only_with_loss_and_after_two_readings() -> None:
    forwarder, _publisher, _upstream, downtrack = setup()
    budget_round(100_000, [downtrack], 0.0)
    assert downtrack.target == "q" and not downtrack.budget_paused  # lowest first
    budget_round(100_000, [downtrack], 1.0)
    assert downtrack.budget_paused and downtrack.paused
    assert forwarder.consumed == ["q"]  # dynacast: nobody wants h or f now
    # a busy receiver (estimate low, no loss) keeps the lowest layer, never paused
    _f, _p, _u, calm = setup()
    for t in range(5):
        budget_round(100_000, [calm], float(t), congested=False)
    assert not calm.budget_paused and calm.target == "q"


def test_a_paused_track_resumes_on_the_layer_that_fits() -> None:
    _forwarder, publisher, upstream, downtrack = setup()
    budget_round(100_000, [downtrack], 0.0)
    budget_round(100_000, [downtrack], 1.0)
    assert downtrack.budget_paused
    budget_round(100_000, [downtrack], 2.0)
    assert downtrack.budget_paused  # back-off not over
    budget_round(700_000, [downtrack], 3.0)
    assert not downtrack.budget_paused and downtrack.target == "h"
    run(publisher, upstream, 3)
    assert downtrack.layer == "h"


def test_the_tile_caps_the_layer_and_leaves_the_rest_of_the_budget() -> None:
    forwarder, publisher, upstream, thumb = setup()
    large = DownTrack("s", "video", 5001)
    large.configure(96, "VP8", 90000, 0)
    large.bind(forwarder)
    large.set_ready(Writer())  # type: ignore[arg-type]
    thumb.set_view(300, 170)
    allowed = budget_round(1_700_000, [thumb, large], 0.0)
    # the thumbnail takes q's 150 kbit/s only: f still fits the large tile
    assert allowed[large] == 1_700_000 - RATES[0]
    run(publisher, upstream, 3)
    assert thumb.layer == "q" and large.layer == "f"
    # a budget that would give f to the thumbnail still gives it q
    budget_round(5_000_000, [thumb], 1.0)
    assert thumb.target == "q"


def test_one_back_off_for_layer_tries() -> None:
    _forwarder, publisher, upstream, downtrack = setup()
    budget_round(800_000, [downtrack], 0.0)
    assert downtrack.target == "h"
    budget_round(800_000, [downtrack], 1.0)
    assert downtrack.target == "h"  # back-off not over
    budget_round(800_000, [downtrack], PAUSE_BACKOFF + 0.1)
    assert downtrack.target == "f" and downtrack.trying_layer  # tried again: the probe
    budget_round(800_000, [downtrack], PAUSE_BACKOFF + 1.1, congested=False)
    assert downtrack.target == "f"  # no loss: the try goes on
    budget_round(800_000, [downtrack], PAUSE_BACKOFF + 2.1, congested=True)
    assert downtrack.target == "h" and not downtrack.trying_layer  # loss: back down
    retry = downtrack._retry_at - (PAUSE_BACKOFF + 2.1)
    assert retry == 2 * PAUSE_BACKOFF  # down soon after a try: twice the wait
    budget_round(800_000, [downtrack], PAUSE_BACKOFF + 2.1 + retry - 0.5)
    assert downtrack.target == "h"
    budget_round(800_000, [downtrack], PAUSE_BACKOFF + 2.1 + retry + 0.1)
    assert downtrack.target == "f"
    # the estimate grows to cover the layer tried: the try succeeded
    budget_round(2_000_000, [downtrack], 20.0)
    assert downtrack.target == "f" and not downtrack.trying_layer
    run(publisher, upstream, 3)
    assert downtrack.layer == "f"


def test_without_an_estimate_the_tile_alone_decides() -> None:
    _forwarder, _publisher, _upstream, downtrack = setup()
    budget_round(300_000, [downtrack], 0.0)
    assert downtrack.target == "q"
    downtrack.set_allowance(None, 0, 1.0)
    assert downtrack.budget_layer is None and downtrack.target == "f"
