#!/usr/bin/perl
# An independent SMSC for the gateway's interop tests, on Net::SMPP (Debian libnet-smpp-perl).
# Configured by one JSON argument (see tests/interop/README.md); one JSON line per event on
# stdout, as the node-smpp server writes them. One connection at a time, as a carrier's bind.
use strict;
use warnings;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);
use Net::SMPP;

my $cfg = decode_json($ARGV[0] // '{}');
my $json = JSON::PP->new->canonical;
$| = 1;
sub out { my %e = @_; $e{t} = int(time * 1000); print $json->encode(\%e), "\n"; }

sub form {
    my ($n, $how) = @_;
    $how //= 'dec';
    return sprintf('%x', $n) if $how eq 'hex';
    return sprintf('%X', $n) if $how eq 'HEX';
    return sprintf('%012X', $n) if $how eq 'HEX0';
    return sprintf('%012d', $n) if $how eq 'dec0';
    return "$n";
}

my $listen = Net::SMPP->new_listen('127.0.0.1', port => $cfg->{port} // 0, smpp_version => 0x34)
    or die "listen: $!";
out(e => 'listening', port => $listen->sockport);
my ($conn, $sel, @timers, %dlr_ids);
my ($submits, $next_id, $unbound) = (0, $cfg->{first_id} // 0x1a2b3c0, 0);

sub later { my ($delay, $code) = @_; push @timers, [time + $delay, $code]; }

sub send_receipt {
    my ($c, $pdu, $n, $resp_id) = @_;
    my $rid = form($n, $cfg->{receipt_form} // $cfg->{resp_form});
    my @tlv = $cfg->{tlv} ? (receipted_message_id => "$resp_id\0", message_state => pack('C', 2)) : ();
    my $seq = $c->deliver_sm(
        source_addr => $pdu->{destination_addr}, destination_addr => $pdu->{source_addr},
        esm_class => 4, async => 1, @tlv,
        short_message => "id:$rid sub:001 dlvrd:001 submit date:2601011200 done date:2601011200 stat:DELIVRD err:000 text:x");
    $dlr_ids{$seq} = $rid;
}

sub on_submit {
    my ($c, $pdu) = @_;
    $submits++;
    my $n = $submits;
    return if $unbound;
    if ($cfg->{throttle_every} && $n % $cfg->{throttle_every} == 0) {
        out(e => 'throttled', n => $n);
        $c->submit_sm_resp(seq => $pdu->{seq}, status => 0x58, message_id => '');
        return;
    }
    my $id = ++$next_id;
    my $resp_id = form($id, $cfg->{resp_form});
    my $body = unpack('H*', $pdu->{short_message} // '');
    out(e => 'submit', n => $n, to => $pdu->{destination_addr}, body => $body, id => $resp_id);
    if ($cfg->{receipt_first}) {
        send_receipt($c, $pdu, $id, $resp_id);
        later(0.02, sub { $c->submit_sm_resp(seq => $pdu->{seq}, message_id => $resp_id) });
    } else {
        $c->submit_sm_resp(seq => $pdu->{seq}, message_id => $resp_id);
        later(($cfg->{receipt_delay_ms} // 10) / 1000, sub { send_receipt($c, $pdu, $id, $resp_id) });
    }
    if (($cfg->{unknown_at} // 0) == $n) {
        $c->syswrite(pack('NNNN', 16, 0x000001ab, 0, 999999));
        out(e => 'unknown_sent');
    }
    if (($cfg->{unbind_at} // 0) == $n) {
        $unbound = 1;
        later(0.005, sub { $c->unbind(async => 1) });
        later(1.5, sub { close_conn() });
        out(e => 'unbind_sent');
    }
}

sub close_conn {
    return unless $conn;
    $sel->remove($conn);
    $conn->close;
    $conn = undef;
    @timers = ();
}

$sel = IO::Select->new($listen);
while (1) {
    my $wait = 0.5;
    if (@timers) {
        my ($first) = sort { $a->[0] <=> $b->[0] } @timers;
        $wait = $first->[0] - time;
        $wait = 0 if $wait < 0;
    }
    for my $fh ($sel->can_read($wait)) {
        if ($fh == $listen) {
            my $c = $listen->accept or next;
            close_conn() if $conn;
            ($conn, $unbound) = ($c, 0);
            $sel->add($conn);
            next;
        }
        my $pdu = $conn->read_pdu;
        if (!$pdu) { close_conn(); next; }
        my $cmd = $pdu->{cmd};
        if ($cmd == 0x00000009) {
            $conn->bind_transceiver_resp(seq => $pdu->{seq}, system_id => 'perlsmsc');
            out(e => 'bound');
            for my $mo (@{ $cfg->{mo} // [] }) {
                $conn->deliver_sm(source_addr => $mo->{from}, destination_addr => $mo->{to},
                                  esm_class => 0, short_message => $mo->{text}, async => 1);
            }
        } elsif ($cmd == 0x00000004) {
            on_submit($conn, $pdu);
        } elsif ($cmd == 0x00000015) {
            $conn->enquire_link_resp(seq => $pdu->{seq});
        } elsif ($cmd == 0x00000006) {
            $conn->unbind_resp(seq => $pdu->{seq});
            close_conn();
        } elsif ($cmd == 0x80000005) {
            my $rid = delete $dlr_ids{$pdu->{seq}};
            out(e => defined $rid ? 'dlr_answered' : 'mo_answered', id => $rid // '');
        }
    }
    my $now = time;
    my @due = grep { $_->[0] <= $now } @timers;
    @timers = grep { $_->[0] > $now } @timers;
    $_->[1]->() for sort { $a->[0] <=> $b->[0] } @due;
}
