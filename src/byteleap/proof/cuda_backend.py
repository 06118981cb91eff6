"""The CUDA challenge path: A and Bᵀ generated on the device (``triton_philox``), multiplied in
the profile's own arithmetic, and every row hashed where it lies (``triton_blake3``). The host
sees 32 bytes per tree node and, at reveal time, the s sampled rows.

A challenge of several products allocates every A_j, B_jᵀ and C_j before the first multiply,
so the peak device memory is products·n²·(2·input bytes + 4): the working set
``sizing.working_set_bytes`` counts. That is the point of it: a card that solves the
challenge honestly holds the claimed memory, and has no room for a second one beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from byteleap.proof.errors import BackendError
from byteleap.proof.matrices import STREAM_A, STREAM_B, stream_of
from byteleap.proof.merkle import TreeKeys
from byteleap.proof.messages import ChallengeSpec
from byteleap.proof.product import Product
from byteleap.proof.profiles import Profile, value_bounds

if TYPE_CHECKING:
    import torch


def input_dtype(profile: Profile) -> torch.dtype:
    import torch

    return {
        Profile.CUDA_F16: torch.float16,
        Profile.CUDA_I8: torch.int8,
        Profile.CPU_F64: torch.float64,
    }[profile]


def result_dtype(profile: Profile) -> torch.dtype:
    """What ``multiply`` writes: fp16 products keep their float32 accumulator (exact integers
    the hash kernels convert word by word), the others int32."""
    import torch

    return torch.float32 if profile is Profile.CUDA_F16 else torch.int32


def multiply(
    a: torch.Tensor, b: torch.Tensor, profile: Profile, out: torch.Tensor | None = None
) -> torch.Tensor:
    """C = A·B on the device in ``result_dtype(profile)``, into ``out`` when given."""
    import torch

    n = a.shape[0]
    if profile is Profile.CUDA_I8:
        if n % 8 == 0 and n > 16:
            # b is a transposed view, i.e. column-major: the fast layout for _int_mm.
            return torch._int_mm(a, b) if out is None else torch._int_mm(a, b, out=out)
        exact = torch.mm(a.double(), b.double()).to(torch.int32)  # sizes _int_mm refuses
    elif profile is Profile.CUDA_F16:
        if out is None:
            return torch.mm(a, b, out_dtype=torch.float32)
        return torch.mm(a, b, out_dtype=torch.float32, out=out)
    else:
        exact = torch.mm(a, b).to(torch.int32)  # float64: exact for every profile
    return exact if out is None else out.copy_(exact)


def cuda_product(spec: ChallengeSpec, keys: TreeKeys, device: torch.device) -> Product:
    import torch

    try:
        from byteleap.proof import triton_blake3, triton_philox
    except ImportError as exc:  # torch's CUDA wheels bring triton; a source build may not
        raise BackendError("the CUDA path needs triton (pip install 'byteleap[gpu]')") from exc
    n, seed, profile, count = spec.n, spec.seed, spec.profile, spec.products
    bounds = value_bounds(profile, n)
    dtype = input_dtype(profile)
    # Every operand and result allocated before the first multiply (see the module docstring).
    a = torch.empty((count, n, n), dtype=dtype, device=device)
    b_columns = torch.empty((count, n, n), dtype=dtype, device=device)
    product = torch.empty((spec.row_count, n), dtype=result_dtype(profile), device=device)
    for j in range(count):
        triton_philox.generate_into(a[j], seed, stream_of(STREAM_A, j), bounds.a)
        triton_philox.generate_into(b_columns[j], seed, stream_of(STREAM_B, j), bounds.b)
    for j in range(count):
        block = product[j * n : (j + 1) * n]
        if multiply(a[j], b_columns[j].T, profile, out=block).data_ptr() != block.data_ptr():
            raise BackendError("the multiply did not write into its preallocated result")
    del a, b_columns  # up to 2·products·n² bytes the tree kernels can use
    tree = triton_blake3.tree_of_product(keys, product)

    def row_bytes(i: int) -> bytes:
        return bytes(product[i].to(torch.int32).cpu().numpy().astype("<i4").tobytes())

    return Product(tree, row_bytes, device=str(device))
