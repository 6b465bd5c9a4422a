"""The Linux team driver with teamd (libteam-utils): the other Linux answer to "teaming".

A team device is created and driven by its teamd, one daemon per team, in userspace:
the kernel module only moves frames, teamd decides which ports carry them (its runner:
``activebackup``, ``lacp``) and watches their links.  RedLab starts each teamd with the
lab, reads its state back with ``teamdctl`` and follows it during a trial, beside the
kernel bond that does the same job inside the kernel.  Some distributions deprecate the
team driver (RHEL 9 does, in favour of bonding); Debian ships it.
"""
