"""The streaming scheduler: discover -> group -> decode/preprocess -> batch -> run -> collect -> write."""
