"""Knowledge distillation: the teacher ensemble, its top-k posterior dump, students."""
