"""Which design should I build? A search over walker designs for a design-conditioned policy.

`design.py` is the command line; here: what the project provides (`project`, the one module
that imports the study, evaluation and sweep machinery), the design space (`space`), scoring a
candidate (`scoring`), the Optuna search (`search`), its report (`report`) and the fine-tuning
check of the top designs (`confirm`). docs/design_search.md is the user's guide.
"""
