"""Performance benchmark of the cutout job and the matplotlib baseline it is
compared with (``make bench``); not part of the installed package.
"""
