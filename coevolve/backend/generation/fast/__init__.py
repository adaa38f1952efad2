"""The fast engine: coevolve's own decode loop for Llama-family models on the CPU.

`model.py` is the model's maths on fused, pre-packed weights; `kv_cache.py` the key/value
cache; `sampling.py` draws a token from the processed distribution; `decode.py` is the loop
(`FastEngine`): prefill once per distinct prompt, decode, drop finished rows.
"""
