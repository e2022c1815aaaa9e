"""Frozen teachers for DM-Codec distillation: speech models (SM) and text models (LM).

Each teacher module documents its interface: a speech teacher has
``features(audio, layer)`` at 50 frames per second, a text teacher ``token_features(texts, layer)``.
"""
