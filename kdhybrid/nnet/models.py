"""The acoustic model zoo: architectures that make different errors, as ensembles need.

Every model maps features ``x`` (N, T, F) float32 with ``lengths`` (N,) int64 to a dict of
logits, ``{"main": (N, T', num_pdfs), <head>: (N, T', dim), ...}``, and output lengths
(N,). ``T' = ceil(T / subsampling)``; with subsampling 3 the outputs are at 30 ms and
:meth:`AcousticModel.log_posteriors` repeats them back to the 10 ms frame rate for the HMM.

* ``dnn``: Kaldi nnet1-style DNN: ``splice`` frames each side spliced into the first affine
  layer (a convolution of width 2 * splice + 1, which also subsamples), then per-frame
  affine, ReLU, LayerNorm layers. The cheapest member: no context is computed twice.
* ``tdnn``: Kaldi nnet3-style TDNN, 1-D convolutions over time with growing dilation
  (context {-2..2}, {-1,0,1}, {-1,0,1}, {-3,0,3}, {-3,0,3}, {-3,0,3} left and
  right: 13 frames of context each side), ReLU, per-frame LayerNorm (no batch statistics, so data-parallel training equals
  single-process training on the same global batch).
* ``blstm``: a TDNN layer then bidirectional LSTM layers with projection (sees the whole
  utterance).
* ``cnn_tdnn`` (CLDNN-like): 2-D convolutions over (time, frequency) as a front-end, then
  TDNN layers and a unidirectional LSTM.

Edges are padded by repeating the first/last frame, as Kaldi does, so T' frames come out
for T in. Output heads (``add_head``) share everything up to the last hidden layer; the
student and the LM-distillation recipes add theirs by name.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    """What builds a model; saved inside every checkpoint."""

    arch: str = "tdnn"
    feat_dim: int = 40
    num_pdfs: int = 0
    hidden: int = 512
    num_layers: int = 6  # TDNN layers (tdnn), LSTM layers (blstm), TDNN layers after the CNN (cnn_tdnn)
    lstm_hidden: int = 256
    subsampling: int = 1  # 1 or 3
    splice: int = 7  # dnn: input frames spliced each side
    dropout: float = 0.1
    heads: Dict[str, int] = field(default_factory=dict)  # extra output heads: name -> dim
    # the features it was trained on (kdhybrid.io.datadir.feature_kind of its training data, e.g.
    # "fmllr(tri3)" or "fbank"); decoding and dumping refuse a data dir of other features. "": unknown
    input_features: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _replicate_pad_time(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """(N, C, T) -> (N, C, left + T + right), edges repeated."""
    if left == 0 and right == 0:
        return x
    return torch.cat([x[:, :, :1].expand(-1, -1, left), x, x[:, :, -1:].expand(-1, -1, right)], dim=2)


def replicate_beyond_lengths(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """(N, C, T): frames at or beyond each sequence's length become its last frame, so a
    sequence's outputs do not depend on how much padding its batch has (edges are
    repeated, as for a sequence alone)."""
    if lengths is None:
        return x
    n, c, t = x.shape
    lengths = lengths.clamp(min=1, max=t).to(x.device)
    if bool((lengths == t).all()):
        return x
    last = x.gather(2, (lengths - 1).view(n, 1, 1).expand(n, c, 1))
    mask = torch.arange(t, device=x.device).view(1, 1, t) < lengths.view(n, 1, 1)
    return torch.where(mask, x, last)


class TdnnLayer(nn.Module):
    """Affine over spliced frames {-d*k..d*k} (a dilated Conv1d), ReLU, LayerNorm, dropout."""

    def __init__(self, in_dim: int, out_dim: int, context: int, dilation: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.context, self.dilation, self.stride = context, dilation, stride
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=2 * context + 1, dilation=dilation, stride=stride)
        self.norm = nn.LayerNorm(out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, valid: bool = False) -> torch.Tensor:
        """(N, C, T) -> (N, C', ceil(T / stride)); ``lengths`` (N,) of the input sequences.
        With ``valid`` the input carries its own context and nothing is padded:
        (N, C, T) -> (N, C', floor((T - 2 * context * dilation - 1) / stride) + 1)."""
        pad = self.context * self.dilation
        t = x.shape[2]
        if valid:
            y = self.conv(replicate_beyond_lengths(x, lengths))
        else:
            y = self.conv(_replicate_pad_time(replicate_beyond_lengths(x, lengths), pad, pad))
            y = y[:, :, : math.ceil(t / self.stride)]
        y = F.relu(y)
        return self.drop(self.norm(y.transpose(1, 2))).transpose(1, 2)


def run_tdnn(layers, x: torch.Tensor, lengths: torch.Tensor, valid: bool = False) -> torch.Tensor:
    """Apply TDNN layers to (N, C, T), keeping the per-sequence lengths up to date (``valid``:
    see :meth:`TdnnLayer.forward`)."""
    for layer in layers:
        x = layer(x, lengths, valid)
        if valid:
            lengths = torch.div(lengths - 2 * layer.context * layer.dilation - 1, layer.stride, rounding_mode="floor") + 1
        elif layer.stride > 1:
            lengths = torch.div(lengths + layer.stride - 1, layer.stride, rounding_mode="floor")
    return x


def valid_trunk(layers, context: Tuple[int, int], x: torch.Tensor, lengths: torch.Tensor, valid: bool) -> torch.Tensor:
    """TDNN layers on (N, T, F) -> (N, T', H), always computed in valid mode. A whole
    utterance (``valid`` False) gets its edges repeated once at the input, ``context`` =
    (left, right) frames (Kaldi's convention), exactly as a training chunk at the utterance's
    edge does (:meth:`kdhybrid.train.data.Example.span`), so chunks and whole utterances give
    the same outputs everywhere."""
    h = x.transpose(1, 2)
    if not valid:
        h = _replicate_pad_time(replicate_beyond_lengths(h, lengths), *context)
        lengths = lengths + sum(context)
    return run_tdnn(layers, h, lengths, valid=True).transpose(1, 2)


class AcousticModel(nn.Module):
    """Base: trunk (subclass) -> hidden (N, T', H) -> heads."""

    def __init__(self, cfg: ModelConfig, out_hidden: int):
        super().__init__()
        if cfg.num_pdfs <= 0:
            raise ValueError("ModelConfig.num_pdfs must be set (the number of senones)")
        if cfg.subsampling not in (1, 3):
            raise ValueError(f"subsampling must be 1 or 3, got {cfg.subsampling}")
        self.cfg = cfg
        self.heads = nn.ModuleDict({"main": nn.Linear(out_hidden, cfg.num_pdfs)})
        self.out_hidden = out_hidden
        for name, dim in cfg.heads.items():
            self.heads[name] = nn.Linear(out_hidden, dim)

    def add_head(self, name: str, dim: int) -> None:
        """Add an output layer ``name`` of ``dim`` outputs on the shared last hidden layer."""
        if name in self.heads:
            raise ValueError(f"head '{name}' exists")
        self.heads[name] = nn.Linear(self.out_hidden, dim)
        self.cfg.heads[name] = dim

    supports_valid = False  # forward(valid=True): the input carries the receptive field (chunk training)

    def trunk(self, x: torch.Tensor, lengths: torch.Tensor, valid: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths + self.cfg.subsampling - 1, self.cfg.subsampling, rounding_mode="floor")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, valid: bool = False) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """:param x: (N, T, F) float32. :param lengths: (N,) int64.
        :param valid: (models with ``supports_valid``) the input holds ``left_context`` frames
            before and ``right_context`` after the frames wanted, and only those are computed:
            T' = ceil((T - left - right) / subsampling), output j being frame left + j * subsampling
            (Kaldi's chunk training: no context computed that is thrown away).
        :return: ({head: (N, T', dim) logits}, (N,) int64 output lengths)."""
        if x.dim() != 3 or x.shape[2] != self.cfg.feat_dim:
            raise ValueError(f"expected (N, T, {self.cfg.feat_dim}) features, got {tuple(x.shape)}")
        if valid:
            if not self.supports_valid:
                raise ValueError(f"{self.cfg.arch} cannot compute only the frames with context (valid=True)")
            h = self.trunk(x, lengths, valid=True)
            core = (lengths - self.left_context - self.right_context).clamp(min=0)
            return {name: head(h) for name, head in self.heads.items()}, self.output_lengths(core)
        h = self.trunk(x, lengths)
        return {name: head(h) for name, head in self.heads.items()}, self.output_lengths(lengths)

    def frame_logits(self, x: torch.Tensor, lengths: torch.Tensor, head: str = "main") -> torch.Tensor:
        """(N, T, dim) float32 logits of ``head`` at the input frame rate (subsampled outputs repeated)."""
        out, _ = self.forward(x, lengths)
        z = out[head]
        if self.cfg.subsampling > 1:
            z = z.repeat_interleave(self.cfg.subsampling, dim=1)[:, : x.shape[1]]
        return z

    def log_posteriors(self, x: torch.Tensor, lengths: torch.Tensor, head: str = "main") -> torch.Tensor:
        """(N, T, num_pdfs) log-softmax at the input frame rate (subsampled outputs repeated)."""
        return self.frame_logits(x, lengths, head).log_softmax(-1)

    @property
    def left_context(self) -> int:
        return getattr(self, "_context", (0, 0))[0]

    @property
    def right_context(self) -> int:
        return getattr(self, "_context", (0, 0))[1]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


TDNN_CONTEXTS = [(2, 1), (1, 1), (1, 1), (1, 3), (1, 3), (1, 3)]  # (context k, dilation d): frames {-kd..kd}


class Tdnn(AcousticModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, cfg.hidden)
        layers = []
        in_dim = cfg.feat_dim
        ctx, rate = 0, 1  # receptive field in input frames; input frames per frame of the current layer
        for i in range(cfg.num_layers):
            k, d = TDNN_CONTEXTS[i] if i < len(TDNN_CONTEXTS) else (1, 3)
            stride = cfg.subsampling if i == min(2, cfg.num_layers - 1) else 1  # subsample after the first layers, as nnet3 recipes
            layers.append(TdnnLayer(in_dim, cfg.hidden, k, d, stride, cfg.dropout))
            ctx += k * d * rate
            rate *= stride
            in_dim = cfg.hidden
        self.layers = nn.ModuleList(layers)
        self._context = (ctx, ctx)

    supports_valid = True

    def trunk(self, x, lengths, valid=False):
        return valid_trunk(self.layers, self._context, x, lengths, valid)


class Dnn(AcousticModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, cfg.hidden)
        layers = [TdnnLayer(cfg.feat_dim, cfg.hidden, cfg.splice, 1, cfg.subsampling, cfg.dropout)]
        layers += [TdnnLayer(cfg.hidden, cfg.hidden, 0, 1, 1, cfg.dropout) for _ in range(cfg.num_layers - 1)]
        self.layers = nn.ModuleList(layers)
        self._context = (cfg.splice, cfg.splice)

    supports_valid = True

    def trunk(self, x, lengths, valid=False):
        return valid_trunk(self.layers, self._context, x, lengths, valid)


class Blstm(AcousticModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, 2 * cfg.lstm_hidden)
        self.tdnn = nn.ModuleList([
            TdnnLayer(cfg.feat_dim, cfg.hidden, 2, 1, 1, cfg.dropout),
            TdnnLayer(cfg.hidden, cfg.hidden, 1, 1, cfg.subsampling, cfg.dropout),
        ])
        self.lstm = nn.LSTM(cfg.hidden, cfg.lstm_hidden, num_layers=cfg.num_layers, batch_first=True, bidirectional=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self._context = (3, 3)  # plus the whole utterance through the LSTMs

    def trunk(self, x, lengths):
        h = run_tdnn(self.tdnn, x.transpose(1, 2), lengths).transpose(1, 2)
        out_len = self.output_lengths(lengths).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, out_len, batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=h.shape[1])
        return y


class CnnTdnn(AcousticModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, cfg.lstm_hidden)
        ch = 32
        self.conv = nn.Sequential(
            nn.Conv2d(1, ch, kernel_size=3, padding=(0, 1)), nn.ReLU(),
            nn.Conv2d(ch, ch, kernel_size=3, padding=(0, 1), stride=(1, 2)), nn.ReLU(),
        )
        conv_out = ch * math.ceil(cfg.feat_dim / 2)
        layers = [TdnnLayer(conv_out, cfg.hidden, 1, 1, cfg.subsampling, cfg.dropout)]
        for i in range(max(cfg.num_layers - 1, 0)):
            layers.append(TdnnLayer(cfg.hidden, cfg.hidden, 1, 3, 1, cfg.dropout))
        self.tdnn = nn.ModuleList(layers)
        self.lstm = nn.LSTM(cfg.hidden, cfg.lstm_hidden, batch_first=True)
        self._context = (2 + 1 + 3 * (len(layers) - 1), 2 + 1 + 3 * (len(layers) - 1))

    def trunk(self, x, lengths):
        # time padding of 2 frames (two 3x3 convolutions without time padding), edges repeated
        xp = _replicate_pad_time(replicate_beyond_lengths(x.transpose(1, 2), lengths), 2, 2).transpose(1, 2)
        h = self.conv(xp.unsqueeze(1))  # (N, C, T, F')
        n, c, t, f = h.shape
        h = h.permute(0, 1, 3, 2).reshape(n, c * f, t)
        h = run_tdnn(self.tdnn, h, lengths).transpose(1, 2)
        out_len = self.output_lengths(lengths).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, out_len, batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=h.shape[1])
        return y


ARCHS = {"dnn": Dnn, "tdnn": Tdnn, "blstm": Blstm, "cnn_tdnn": CnnTdnn}


def build_model(cfg: ModelConfig) -> AcousticModel:
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown architecture '{cfg.arch}'; known: {sorted(ARCHS)}")
    return ARCHS[cfg.arch](cfg)
