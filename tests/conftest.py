import os

# Progress bars and TensorBoard stay quiet in tests, as in CI.
os.environ.setdefault("CI", "1")
