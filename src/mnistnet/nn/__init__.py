"""The network and how it learns; read these first.

``model`` is the network (forward, loss, backward), ``optim`` the update rules, ``train`` the
loop that calls both; ``batches`` feeds it, ``streams`` gives each random purpose its own
generator, ``checkpoint`` saves and loads a trained network.
"""
