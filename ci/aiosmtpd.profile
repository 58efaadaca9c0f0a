domain = example.test
rcpt = test@example.test
accept_all = yes
