import torch

# The test machine is shared; one intra-op thread avoids oversubscription stalls (see docs/semantic-ids.md).
torch.set_num_threads(1)
