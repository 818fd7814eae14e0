"""Long-tailed classification for Generative Invariance Transfer (REFERENCE §6): losses (CE,
focal, LDAM, effective-number weights), the trainer with GIT's train rules (ERM, resampling, DRS,
reweighting, DRW) and the oracle, and evaluation helpers."""
from .losses import (LOSSES, CrossEntropyLoss, FocalLoss, LDAMLoss, effective_number_weights,
                     ldam_margins, make_loss)
from .trainer import (CHECKPOINT_NAME, RULES, ClassifierConfig, ClassifierRun, epoch_indices,
                      epoch_plan, evaluate, lr_at_epoch, predict_proba, recompute_bn_stats,
                      schedule_phases, step_epochs, switch_epoch, train_classifier,
                      warmup_length)
