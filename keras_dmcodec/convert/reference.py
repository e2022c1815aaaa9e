"""Access to the reference PyTorch SpeechTokenizer model, for parity tests and benchmarks.

The ``speechtokenizer`` package's ``__init__`` imports ``torchaudio``, which
this project does not install (it pulls a CUDA torch). ``import_reference_model``
loads ``speechtokenizer.model`` without running that ``__init__``.
"""

import importlib
import importlib.util
import sys
import types

# The model keys of the reference DM-Codec / SpeechTokenizer config (config/spt_base_cfg.json).
REFERENCE_BASE_CONFIG = {
    "n_filters": 64,
    "strides": [8, 5, 4, 2],
    "dimension": 1024,
    "semantic_dimension": 768,
    "bidirectional": True,
    "dilation_base": 2,
    "residual_kernel_size": 3,
    "n_residual_layers": 1,
    "lstm_layers": 2,
    "activation": "ELU",
    "codebook_size": 1024,
    "n_q": 8,
    "sample_rate": 16000,
}


def import_reference_model():
    """Returns the ``speechtokenizer.model`` module without importing ``torchaudio``.

    Registers a bare package module for ``speechtokenizer`` (whose ``__path__``
    is the installed package directory) unless the real package is already
    imported, then imports the ``model`` submodule.
    """
    if "speechtokenizer.model" in sys.modules:
        return sys.modules["speechtokenizer.model"]
    if "speechtokenizer" not in sys.modules:
        spec = importlib.util.find_spec("speechtokenizer")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the reference package is not installed: pip install --no-deps "
                              "speechtokenizer==1.0.1 einops beartype")
        stub = types.ModuleType("speechtokenizer")
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec
        sys.modules["speechtokenizer"] = stub
    return importlib.import_module("speechtokenizer.model")


def build_random_reference(cfg, seed=0, probe_audio=None):
    """A reference ``SpeechTokenizer`` in eval mode with random weights fit for parity tests.

    The reference initialises codebooks to zeros for k-means, so they are
    filled here with Gaussian rows that have the per-dimension mean and spread
    of the residual each layer quantises (the encoder's latents on
    ``probe_audio``, or on noise when none is given), so codes spread over the
    codebook; ``inited`` is set to 1. Every ``weight_g`` is scaled by a random
    factor in [0.5, 1.5] so that ``g != ||v||`` and the weight-norm
    reparametrisation is exercised. The encoder's last bias is shifted so its
    latents on ``probe_audio`` have zero mean per dimension, as a trained
    encoder's roughly do (see the comment in the code).

    Args:
        cfg: reference config dict.
        seed: int. Torch seed.
        probe_audio: optional float array ``[batch, samples]`` for the codebook fill.

    Returns:
        the torch model.
    """
    import torch

    module = import_reference_model()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = module.SpeechTokenizer(cfg).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight_g"):
                param.mul_(0.5 + torch.rand(param.shape, generator=generator))
        if probe_audio is None:
            probe = 0.1 * torch.randn(2, 1, 16000, generator=generator)
        else:
            probe = torch.as_tensor(probe_audio, dtype=torch.float32)[:, None, :]
        # A random encoder's latents sit on a large constant offset (its biases), which makes
        # every code distance a small difference of large numbers: float32 rounding then
        # decides near-ties, in the reference as in any port. Trained encoders have no such
        # offset, so the last conv's bias is shifted to centre the latents.
        last_conv = model.encoder.model[-1].conv.conv
        last_conv.bias.sub_(model.encoder(probe).mean(dim=(0, 2)))
        latents = model.encoder(probe)  # (B, D, F)
        residual = latents.transpose(1, 2).reshape(-1, latents.shape[1])
        for layer in model.quantizer.vq.layers:
            book = layer._codebook
            size = book.embed.shape[0]
            # Gaussian rows with the latents' per-dimension mean and spread: codes
            # spread over the codebook without the near-ties that copies of frames give.
            mean = residual.mean(dim=0, keepdim=True)
            spread = residual.std(dim=0, keepdim=True).clamp_min(1e-4)
            embed = mean + spread * torch.randn(book.embed.shape, generator=generator)
            book.embed.copy_(embed)
            counts = 1.0 + 10.0 * torch.rand(size, generator=generator)
            book.cluster_size.copy_(counts)
            book.embed_avg.copy_(embed * counts[:, None])
            book.inited.fill_(1.0)
            chosen = layer.decode(layer.encode(residual.T[None]))[0].T
            residual = residual - chosen
    return model
