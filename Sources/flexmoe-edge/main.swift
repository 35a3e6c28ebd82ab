import CSystem
csys_exit(0)
