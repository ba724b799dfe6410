"""Publishing a selection on the Hub: the dataset folder (:mod:`.folder`), its card
(:mod:`.card`) and the push (:mod:`.push`)."""
