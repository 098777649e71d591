"""The distillation layer: what a reader needs to distil a model, and nothing about files.

Losses (`losses`), the frozen-teacher `Distiller` (`distiller`), fused and batched students
(`fused`, `batched`), feature distillation (`features`), the models (`models`), the data sets
and their label noise (`data`), augmentation (`augment`), metrics on logits including
confusion matrices and ECE (`metrics`), seeding (`repro`), the finite-input checks (`finite`)
and the report's own metric (`reportmetric`). Nothing here reads profiles or results files:
that is the runner's job (`kdutils.profiles`, `kdutils.experiment`, `kdutils.sweep`).
"""
