"""Distillation: student from teacher layers, DistilBERT loss, training CLI, model card, Hub publishing."""
