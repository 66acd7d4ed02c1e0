"""Precision per device: what `auto` picks, and the warning for bf16 a CPU would emulate."""

import logging

import torch

from bert_pos.runtime.devices import (
    cpu_description,
    cpu_runs_bf16_natively,
    padding_multiple,
    resolve_precision,
)

CPU = torch.device("cpu")
AVX2 = {"fpu", "sse4_2", "avx", "avx2", "fma"}
AVX512_BF16 = AVX2 | {"avx512f", "avx512bw", "avx512_bf16"}


def test_native_bf16_needs_avx512_bf16_or_amx():
    assert not cpu_runs_bf16_natively(AVX2)
    assert cpu_runs_bf16_natively(AVX512_BF16)
    assert cpu_runs_bf16_natively(AVX2 | {"amx_bf16", "amx_tile"})


def test_auto_is_bf16_only_where_the_cpu_runs_it():
    assert resolve_precision("auto", CPU, AVX2) == "fp32"
    assert resolve_precision("auto", CPU, AVX512_BF16) == "bf16"
    assert resolve_precision("fp32", CPU, AVX2) == "fp32"


def test_bf16_on_a_cpu_that_emulates_it_warns_naming_the_cpu(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("bf16", CPU, AVX2) == "bf16"  # runs as asked, but warned
    message = caplog.text
    assert "without AVX512-BF16 or AMX" in message and "precision=fp32" in message
    assert torch.backends.cpu.get_cpu_capability() in message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        resolve_precision("bf16", CPU, AVX512_BF16)
    assert caplog.text == ""


def test_a_onednn_cap_below_bf16_makes_bf16_emulated_even_where_the_cpu_has_it(monkeypatch):
    # oneDNN runs the matmuls: capped at AVX2 it emulates bf16 (30x slower than fp32, measured)
    assert not cpu_runs_bf16_natively(AVX512_BF16, onednn_cap="AVX2")
    assert not cpu_runs_bf16_natively(AVX512_BF16, onednn_cap="AVX512_CORE")
    assert cpu_runs_bf16_natively(AVX512_BF16, onednn_cap="AVX512_CORE_BF16")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert resolve_precision("auto", CPU, AVX512_BF16) == "fp32"
    assert cpu_description(AVX512_BF16).endswith("AVX512-BF16 unused: oneDNN capped at AVX2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert cpu_description(AVX512_BF16).endswith("AVX512-BF16")
    assert cpu_description(AVX2).endswith("no native bf16")


def test_padding_multiple_is_the_configured_one_or_the_devices():
    assert padding_multiple(None, CPU) == 1  # padding is pure extra work on a CPU
    assert padding_multiple(None, torch.device("cuda", 0)) == 8  # tensor cores
    assert padding_multiple(32, CPU) == 32  # e.g. coarse buckets for compile
