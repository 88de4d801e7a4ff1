# gnuplot -e "csv='x.csv'; png='x.png'; title='...'" benches/soak/plot.gp
set datafile separator ","
set terminal pngcairo size 1200,900 font ",10"
set output png
set multiplot layout 3,1 title title
set xlabel "minutes"
set key outside right top
set yrange [0:*]
set ylabel "MiB"
plot csv using ($1/60):($2/1024) every ::1 with lines lw 2 title "RSS"
set ylabel "count"
plot csv using ($1/60):3 every ::1 with lines lw 2 title "file descriptors", \
     csv using ($1/60):4 every ::1 with lines lw 2 title "threads", \
     csv using ($1/60):5 every ::1 with lines lw 2 title "upstream connections"
set ylabel "ms"
plot csv using ($1/60):6 every ::1 with lines lw 2 title "client p99 (10 s window)"
unset multiplot
