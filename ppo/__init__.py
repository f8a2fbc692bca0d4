"""The PPO algorithm alone: network, rollout storage, GAE, loss, update, normalisers, schedules.

Nothing here imports the study, the workers or evaluation: the study hands the algorithm its
settings (`ppo.algorithm.PPOSettings`), a rollout source (`ppo.algorithm.RolloutSource`) and
what computes the update's gradient shards (`ppo.algorithm.GradientSource`; both are the
study's walker pool).
"""
