"""Training: the handwritten loop and what it is built from.

    run, state = setup(cfg, run_dir)   # setup.py
    train_loop(run, state)             # loop.py
    metrics = finish(run, state)       # finish.py

state.py              what the loop carries (`LoopState`, saved in checkpoints) and `Run`
loop.py               optimizer steps, evaluation and selection, epoch ends
optimization.py       AdamW groups, the linear schedule, the loss normaliser
progress.py           progress lines, TensorBoard curves and the HParams row
resume.py             step checkpoints, exact resume, the continue command
finish.py             test on the best checkpoint, export, metrics.json
reference_trainer.py  the same recipe through the Hugging Face Trainer (for the bench)
"""
