#!/bin/sh
# shared_counter_order.sh PROGRAM THREADS ITERS
# Runs shared_counter and checks that the counts are 1..THREADS*ITERS in
# output order, each line well-formed, and that total is THREADS*ITERS.
prog=$1 threads=$2 iters=$3
"$prog" "$threads" "$iters" | awk -v threads="$threads" -v iters="$iters" '
	/^thread [0-9]+ count [0-9]+$/ {
		if ($2 >= threads) { print "bad thread id: " $0; bad = 1; exit 1 }
		if ($4 != ++want) { print "expected count " want ", got: " $0; bad = 1; exit 1 }
		next
	}
	/^total [0-9]+$/ { total = $2; seen++; next }
	{ print "malformed line: " $0; bad = 1; exit 1 }
	END {
		if (bad) exit 1
		if (seen != 1) { print "expected one total line, got " seen; exit 1 }
		if (want != threads * iters || total != want) {
			print "expected total " threads * iters ", counted " want ", printed " total
			exit 1
		}
	}'
