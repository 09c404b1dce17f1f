print("conjure")
