DROP TABLE login_failures_by_ip;
