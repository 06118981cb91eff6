"""The SDK's lease methods against a real gateway (uvicorn on loopback over the in-memory
service, which has two free workers): both clients, and the errors each case promises."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator

import pytest

import byteleap.sdk as sdk
from byteleap.sdk import AsyncClient, Client, LeaseSpec, LeaseState, Resources
from gateway.live import ALICE_KEY, BOB_KEY, LiveGateway, tenants

ONE_GPU = LeaseSpec(resources=Resources(gpu_count=1), duration_s=600)


@pytest.fixture
def live() -> Iterator[LiveGateway]:
    with LiveGateway(tenants(capacity=2)) as gateway:
        yield gateway


@pytest.fixture
async def alice(live: LiveGateway) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live.url, ALICE_KEY, timeout=10) as client:
        yield client


async def test_create_get_list_extend_release(alice: AsyncClient, live: LiveGateway) -> None:
    lease = await alice.create_lease(ONE_GPU)
    assert (lease.state, lease.spec, lease.gpu_count) == (LeaseState.ACTIVE, ONE_GPU, 1)
    from_dict = await alice.create_lease({"resources": {"cpu_cores": 2}, "duration_s": 60})
    assert (from_dict.gpu_model, from_dict.gpu_count, from_dict.cpu_cores) == (None, 0, 2)
    assert (await alice.get_lease(lease.id)).id == lease.id
    assert {x.id for x in await alice.list_leases()} == {lease.id, from_dict.id}
    assert len(await alice.list_leases(limit=1)) == 1
    extended = await alice.extend_lease(lease.id, 120)
    assert extended.ends_at == lease.ends_at + 120
    released = await alice.release_lease(lease.id)
    assert released.state is LeaseState.RELEASED
    assert released.ended_at is not None and released.cost >= 0
    assert live.call(lambda: live.service.capacity) == 1


async def test_lease_errors_are_typed(alice: AsyncClient, live: LiveGateway) -> None:
    lease = await alice.create_lease(ONE_GPU)
    await alice.create_lease(ONE_GPU)
    with pytest.raises(sdk.Unavailable) as full:
        await alice.create_lease(ONE_GPU)
    assert (full.value.status, full.value.reason) == (503, "no_capacity")
    async with AsyncClient(live.url, BOB_KEY) as bob:
        with pytest.raises(sdk.NotFound):
            await bob.get_lease(lease.id)
        with pytest.raises(sdk.NotFound):
            await bob.release_lease(lease.id)
    with pytest.raises(sdk.InvalidRequest) as invalid:
        await alice.extend_lease(lease.id, 0)
    assert invalid.value.field == "seconds"
    with pytest.raises(sdk.InvalidRequest) as bad_spec:
        await alice.create_lease({"duration_s": 1})
    assert bad_spec.value.field == "duration_s"
    with pytest.raises(sdk.PaymentRequired):
        await alice.extend_lease(lease.id, 7 * 24 * 3600.0)
    await alice.release_lease(lease.id)
    with pytest.raises(sdk.Conflict):
        await alice.release_lease(lease.id)
    with pytest.raises(sdk.Conflict):
        await alice.extend_lease(lease.id, 60)
    with pytest.raises(sdk.NotFound):
        await alice.get_lease("no/such lease?")  # one quoted path segment


def test_sync_client_wraps_the_lease_methods(live: LiveGateway) -> None:
    with Client(live.url, ALICE_KEY, timeout=10) as client:
        lease = client.create_lease({"resources": {"gpu_count": 1}, "duration_s": 60})
        assert [x.id for x in client.list_leases()] == [lease.id]
        assert client.extend_lease(lease.id, 30).ends_at == lease.ends_at + 30
        assert client.get_lease(lease.id).state is LeaseState.ACTIVE
        assert client.release_lease(lease.id).state is LeaseState.RELEASED
        with pytest.raises(sdk.Conflict):
            client.release_lease(lease.id)


def test_every_async_method_has_its_sync_twin() -> None:
    public = {
        name
        for name, member in inspect.getmembers(AsyncClient, inspect.isfunction)
        if not name.startswith("_") and name != "aclose"
    }
    for name in public:
        sync = getattr(Client, name, None)
        assert sync is not None, name
        async_params = list(inspect.signature(getattr(AsyncClient, name)).parameters)
        assert list(inspect.signature(sync).parameters) == async_params, name
