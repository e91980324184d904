#!/bin/sh
# usage.sh BINDIR
# Bad arguments must print a usage line to stderr and exit 2.
dir=$1
fail=0
expect_usage() {
	out=$("$@" 2>&1 >/dev/null)
	rc=$?
	case "$rc:$out" in
	2:usage:*) ;;
	*) echo "FAIL: $* exited $rc with stderr '$out'"; fail=1 ;;
	esac
}
expect_usage "$dir/shared_counter"
expect_usage "$dir/shared_counter" 4
expect_usage "$dir/shared_counter" -1 5
expect_usage "$dir/shared_counter" 4 5x
expect_usage "$dir/shared_counter" 4 5 --safe
expect_usage "$dir/tcp_chat_server"
expect_usage "$dir/tcp_chat_server" 65536
expect_usage "$dir/tcp_chat_server" " 80"
expect_usage "$dir/tcp_chat_client" localhost
expect_usage "$dir/tcp_chat_client" nosuchhost 80
expect_usage "$dir/udp_chat_server" +5
expect_usage "$dir/udp_chat_client" 127.0.0.1 x
expect_usage "$dir/select_chat_server" 1 2
exit $fail
