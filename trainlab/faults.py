"""placeholder"""
def planted(loop):
    return None
