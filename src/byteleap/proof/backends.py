"""Worker compute backends: multiply the challenge matrices and digest every result row.

numpy: float64 BLAS (integer matmul has no BLAS path and is ~100× slower; float64 is exact
here because every profile keeps n·a·b < 2³¹) in one call. torch: float64 on CPU; on CUDA
``cuda_backend`` (generated, multiplied in the profile's own arithmetic and hashed on the
device, so the n×n product never crosses to the host).

A challenge of several products is computed with every operand and every result allocated
before the first multiply: the working set is their sum, on purpose. Sizing
(``proof.sizing``) counts on an honest solver holding all of it at once, so that a card keeps
the claimed memory resident and cannot hold a second worker's challenge beside it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from byteleap.proof.errors import BackendError
from byteleap.proof.matrices import F64Array, fill_a, fill_b_columns
from byteleap.proof.merkle import MerkleTree, TreeKeys, row_digest
from byteleap.proof.messages import ChallengeSpec
from byteleap.proof.product import Product
from byteleap.proof.profiles import Profile

logger = logging.getLogger(__name__)


class Backend(StrEnum):
    NUMPY = "numpy"
    TORCH = "torch"


def encode_rows(product: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    """Canonical int32 little-endian rows.

    No range scan here: the profile bound makes an honest product fit by construction, and a
    dishonest or broken one is what ``verify`` exists to catch.
    """
    return product.astype("<i4")


def tree_of_rows(keys: TreeKeys, rows: npt.NDArray[np.int32]) -> MerkleTree:
    return MerkleTree.from_row_digests(
        keys, [row_digest(memoryview(row).cast("B")) for row in rows]
    )


def host_operands(spec: ChallengeSpec) -> tuple[F64Array, F64Array]:
    """A_j and B_jᵀ of every product, shape (products, n, n) each, float64.

    A_j and B_j are generated side by side (Philox and the ufuncs release the GIL).
    """
    shape = (spec.products, spec.n, spec.n)
    a = np.empty(shape, dtype=np.float64)
    b_columns = np.empty(shape, dtype=np.float64)
    with ThreadPoolExecutor(max_workers=1) as helper:
        for j in range(spec.products):
            b_done = helper.submit(
                fill_b_columns, b_columns[j], spec.seed, spec.profile, product=j, threads=1
            )
            fill_a(a[j], spec.seed, spec.profile, product=j, threads=1)
            b_done.result()
    return a, b_columns


def _numpy_product(spec: ChallengeSpec, keys: TreeKeys) -> Product:
    """C_j = A_j·B_j, one BLAS call each, with nothing else running while BLAS holds every core.

    Every A_j, B_j and C_j is allocated before the first multiply (the working set is their
    sum: see the module docstring). The products are then encoded and hashed on one thread,
    because blake3 takes the GIL back after every 8 KB row and two hashing threads spend their
    time handing it over. Overlapping these stages with the product in row blocks was measured
    slower on 2 cores (1.37–1.47× the bare product against 1.2–1.3× for this): BLAS already
    uses every core, and a blocked product is less efficient than one call.
    """
    n = spec.n
    a, b_columns = host_operands(spec)
    product = np.empty((spec.products, n, n), dtype=np.float64)
    for j in range(spec.products):
        np.matmul(a[j], b_columns[j].T, out=product[j])
    del a, b_columns
    rows = encode_rows(product.reshape(spec.row_count, n))
    return Product(tree_of_rows(keys, rows), lambda i: rows[i].tobytes())


def _torch_product(spec: ChallengeSpec, keys: TreeKeys, device: str) -> Product:
    try:
        import torch
    except ImportError as exc:  # torch is an optional dependency
        raise BackendError("the torch backend needs torch installed") from exc
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError("CUDA requested but torch.cuda.is_available() is False")
        from byteleap.proof.cuda_backend import cuda_product

        return cuda_product(spec, keys, dev)
    n = spec.n
    a_host, b_host = host_operands(spec)
    a, bt = torch.from_numpy(a_host), torch.from_numpy(b_host)
    # All results allocated before the first multiply, as on the other backends.
    product = torch.empty((spec.row_count, n), dtype=torch.float64)
    for j in range(spec.products):
        torch.mm(a[j], bt[j].T, out=product[j * n : (j + 1) * n])
    del a, bt, a_host, b_host
    rows = encode_rows(product.numpy())
    return Product(tree_of_rows(keys, rows), lambda i: rows[i].tobytes())


#: A worker's backend setting: one of the backends, or "auto" (the GPU where one serves).
AUTO = "auto"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def run_target(spec: ChallengeSpec, backend: str) -> tuple[Backend, str]:
    """Where a worker runs a challenge: a CUDA profile on the GPU when torch sees one (with
    ``auto`` or ``torch``), everything else on the CPU (numpy with ``auto``)."""
    on_gpu = spec.profile is not Profile.CPU_F64 and _cuda_available()
    if backend == AUTO:
        return (Backend.TORCH, "cuda") if on_gpu else (Backend.NUMPY, "cpu")
    chosen = Backend(backend)
    return chosen, "cuda" if chosen is Backend.TORCH and on_gpu else "cpu"


def compute_product(spec: ChallengeSpec, backend: Backend, device: str) -> Product:
    keys = TreeKeys.for_challenge(spec.challenge_id)
    if backend is Backend.NUMPY:
        if device != "cpu":
            raise BackendError(f"the numpy backend runs on cpu, not {device}")
        return _numpy_product(spec, keys)
    return _torch_product(spec, keys, device)
