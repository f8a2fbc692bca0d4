"""The shared vocabulary of the tool, below every package that uses it (as SB3's `common/`):
a study's configuration and flags (`config`), the errors the CLIs report (`errors`), the
checkpoint format (`checkpoint`), the names of a study's files (`study_files`), the results
format (`results`), the study lock (`locking`) and what the machine can give (`resources`).
It imports only `envs/` and `ppo/`."""
