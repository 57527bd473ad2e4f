"""--offload_model / --offload_optimizer around colocated vLLM generation (swift/rlhf/offload.py)."""
import pytest
import torch
from torch import nn

from swift.rlhf.offload import OffloadSettings, offloaded

EVERYTHING = OffloadSettings(model=True, optimizer=True, gc_collect=True)


def _model_and_optimizer(device: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(256, 256), nn.LayerNorm(256)).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 256, device=device)).sum().backward()
    optimizer.step()  # creates the moment tensors
    return model, optimizer


def test_on_a_cpu_offloading_changes_nothing():
    model, optimizer = _model_and_optimizer('cpu')
    storages = [p.data_ptr() for p in model.parameters()]
    with offloaded(model, optimizer, EVERYTHING):
        assert [p.data_ptr() for p in model.parameters()] == storages


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU: offloading frees GPU memory')
def test_on_a_gpu_weights_and_optimizer_state_leave_and_come_back():
    model, optimizer = _model_and_optimizer('cuda')
    weights = {name: p.detach().cpu().clone() for name, p in model.named_parameters()}
    before = torch.cuda.memory_allocated()
    with offloaded(model, optimizer, EVERYTHING):
        assert all(p.device.type == 'cpu' for p in model.parameters())
        assert all(v.device.type == 'cpu' for s in optimizer.state.values() for v in s.values() if v.dim())
        assert torch.cuda.memory_allocated() < before
    assert all(p.device.type == 'cuda' for p in model.parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.detach().cpu(), weights[name])
    model(torch.randn(4, 256, device='cuda')).sum().backward()
    optimizer.step()  # the same parameter objects, with their state, train on
