"""The training objectives: one file each, found by `registry.py`, picked by `objective.kind`.

An objective is one file, `<kind>.py`, plus its design note `<kind>.md`. The file holds
everything the harness knows about it, in one class, its config (`base.ObjectiveConfig`):
the recipe fields; the row it trains on; its parameters and training FLOPs per token,
beside the modules they count; how tables label it and which claims of the comparison it
joins; and the model side: its own parameters, its losses, its per-depth logits, how it
drafts for self-speculative decoding and how its tensors are exported. No other module
branches on a kind. The kind is the file's name, so a copy of `stp.py` under a new name is
a new objective (`tests/model/test_model_objectives_registry.py` plans, trains, exports,
evaluates and compares one), and another package adds its own through the
`mtp_harness.objectives` entry-point group.

Why the file's top level does not import torch. Two wishes meet here: an objective should be
one readable file, and the recipe layer (`harness resolve`, `plan`, `launch --dry-run`,
`--help`) should start in well under a second, which it cannot do once torch is imported
(about 1.5-2.5 s here, most of a cold start). Building the recipe schema needs every
objective's config class, so discovery imports every objective file. We keep both wishes by
writing each file so that importing it is cheap:
  - the config class is plain pydantic, and the methods that plans and reports call
    (`params`, `flops`, `label`, ...) are arithmetic on the config;
  - the objective's parameters live in an `nn.ModuleDict` of the trunk's building blocks
    (`Block`, `RMSNorm`, `nn.Linear`) that `build` returns, instead of an `nn.Module`
    subclass, whose class statement would need torch at import;
  - the methods that run the model (`build`, `forward`, `depth_logits`, drafting) import
    torch and the trunk inside their bodies, where they are only ever called with tensors;
  - machinery that is not specific to one objective lives with the model (`trunk.py`'s
    blocks, `sequential_heads.py`'s one-head-at-a-time backward, `decoding.py`'s paths).
The alternatives were worse to read: a torch module class defined inside a function, a
second file per objective, or discovery that parses source instead of importing it.
`tests/test_recipe.py` holds the line: importing the recipe layer, and running
`harness resolve` and `harness plan`, leave torch out of `sys.modules`.

Parameter names are kept from the first layout (Meta's `heads.<k>`, DeepSeek's
`layers.<k>.{enorm,hnorm,eh_proj,block,shared_head}`), so checkpoints and exports made
before this layout load unchanged.
"""
