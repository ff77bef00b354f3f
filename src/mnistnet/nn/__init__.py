"""The network and how it learns; read these first.

``model`` is the network (forward, loss, backward), ``optim`` the update rules, ``train`` the
loop that calls both; ``batches`` feeds it, ``streams`` gives each random purpose its own
generator, ``checkpoint`` turns a trained network into a model file's arrays and back,
``config`` is the train stage's side (its params section, memory plan, progress lines).
Nothing here imports ``data/`` or touches a file: sizes come from the arrays given.
"""
