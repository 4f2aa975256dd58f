"""One run on several processes (PyTorch DDP): each process is a rank of a group and trains its share of every batch.

Every rank builds the same ``Trainer`` from the same config and seed, so the model, the optimizer, the batch order and
the random draws are the same on all of them. A rank keeps the images ``rank::size`` of each batch (``Group.share``),
DDP averages the gradients over the ranks, and each epoch's numbers are sums over all ranks before they are divided:
the whole split's loss and accuracy, as one process would measure them. With the batch size a multiple of the
group's size, every rank's share of a training batch is the same size, so the averaged gradient is the whole batch's.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

# A rank that dies leaves the others waiting in a collective (gloo usually sees the closed connection at once); they
# give up after this long, and the trial is retried from its last checkpoint. Longer than what one rank may do while
# the others wait: a step, an evaluation, rank 0's checkpoint upload and report, a node staging its data.
TIMEOUT_S = 1800


@dataclasses.dataclass(frozen=True)
class Group:
    """This process's place in a run: rank ``rank`` of ``size`` (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def many(self) -> bool:
        """Whether the run has other ranks than this one."""
        return self.size > 1

    def share(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's images of a batch: every ``size``-th from its rank on."""
        return x[self.rank :: self.size] if self.many else x

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over every rank (in float64: counts of images stay exact)."""
        values = values.double()
        if self.many:
            dist.all_reduce(values)
        return values

    def whole(self, part: torch.Tensor) -> torch.Tensor:
        """A batch's values put back in the batch's order from every rank's share (``share``'s inverse); on the CPU."""
        if not self.many:
            return part.cpu()
        parts: list[torch.Tensor | None] = [None] * self.size
        dist.all_gather_object(parts, part.cpu())
        out = torch.empty(sum(len(p) for p in parts), dtype=part.dtype)
        for rank, p in enumerate(parts):
            out[rank :: self.size] = p
        return out


ONE = Group()


def join(address: str, rank: int, size: int, device: torch.device, own_ip: str | None = None) -> Group:
    """Join the group of ``size`` processes whose rank 0 listens at ``address`` (``host:port``): NCCL on GPUs, gloo
    on CPUs. ``own_ip``: this node's address, whose interface the ranks' connections use. Returns once every rank
    has joined."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if own_ip:
        _use_interface_of(own_ip)
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    dist.init_process_group(backend, init_method=f"tcp://{address}", rank=rank, world_size=size, timeout=timeout)
    return Group(rank, size)


def leave(together: bool = False) -> None:
    """Leave the group this process joined (a reused trial process joins the next trial's); ``together``: once
    every rank is leaving (at a run's end), so that none closes its connections while another still uses them."""
    if dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def _use_interface_of(ip: str) -> None:
    """Gloo and NCCL connect the ranks through the interface that holds ``ip``. Left to choose, they take the address
    the host name resolves to, which on a node of several interfaces (or network namespaces) may be one the other
    nodes cannot reach, or loopback: the ranks then wait for each other until the timeout."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address == ip for a in addresses):
            for variable in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):  # a user's own choice stands
                os.environ.setdefault(variable, name)
            return
