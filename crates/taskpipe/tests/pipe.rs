//! The pipe as the proxy's two halves use it: order, bounds, permits, close from either end,
//! cancellation inside `select!`, and wake-ups between two futures joined in one task.

use futures::FutureExt;
use metalgate_taskpipe::{Pipe, SendError, TryRecvError, TrySendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test]
async fn values_arrive_in_order_across_the_ring_wrapping() {
    let mut pipe = Pipe::<u32, 3>::new();
    let (tx, mut rx) = pipe.split();
    let mut got = Vec::new();
    for round in 0..4 {
        for i in 0..2 {
            tx.send(round * 10 + i).await.unwrap();
        }
        got.push(rx.recv().await.unwrap());
        got.push(rx.recv().await.unwrap());
    }
    assert_eq!(got, [0, 1, 10, 11, 20, 21, 30, 31]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test]
async fn a_full_pipe_makes_the_sender_wait_until_the_receiver_takes_one() {
    let mut pipe = Pipe::<u32, 2>::new();
    let (tx, mut rx) = pipe.split();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    assert!(
        tx.send(3).now_or_never().is_none(),
        "a third value fit in two slots"
    );
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full);
    // The waiting send was dropped above: it queued nothing.
    assert_eq!(rx.recv().await, Some(1));
    tx.send(3)
        .now_or_never()
        .expect("room after a take")
        .unwrap();
    assert_eq!(rx.recv().await, Some(2));
    assert_eq!(rx.recv().await, Some(3));
}

#[tokio::test]
async fn a_permit_holds_a_slot_until_it_is_used_or_dropped() {
    let mut pipe = Pipe::<u32, 2>::new();
    let (tx, mut rx) = pipe.split();
    tx.send(1).await.unwrap();
    let permit = tx.reserve().await.unwrap();
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full);
    drop(permit);
    let permit = tx
        .try_reserve()
        .expect("the dropped permit's slot is free again");
    permit.send(2);
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full);
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(rx.recv().await, Some(2));
    assert!(tx.try_reserve().is_ok());
}

#[tokio::test]
async fn a_dropped_receiver_fails_sends_and_drops_what_was_queued() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut pipe = Pipe::<Counted, 4>::new();
    let (tx, rx) = pipe.split();
    tx.send(Counted(dropped.clone())).await.unwrap();
    tx.send(Counted(dropped.clone())).await.unwrap();
    let permit = tx.reserve().await.unwrap();
    assert!(!tx.is_closed());
    drop(rx);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "the queued values were kept"
    );
    assert!(tx.is_closed());
    // A permit taken before the close drops its value.
    permit.send(Counted(dropped.clone()));
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
    let SendError(back) = tx.send(Counted(dropped.clone())).await.unwrap_err();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        3,
        "the failed send did not hand back its value"
    );
    drop(back);
    assert!(matches!(tx.reserve().await, Err(SendError(()))));
    assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Closed);
}

#[tokio::test]
async fn a_dropped_sender_ends_the_stream_after_what_was_queued() {
    let mut pipe = Pipe::<&str, 4>::new();
    let (tx, mut rx) = pipe.split();
    tx.send("header").await.unwrap();
    tx.send("body").await.unwrap();
    drop(tx);
    assert_eq!(rx.recv().await, Some("header"));
    assert_eq!(rx.try_recv(), Ok("body"));
    assert_eq!(rx.recv().await, None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[tokio::test]
async fn futures_cancelled_in_select_send_reserve_and_take_nothing() {
    let mut pipe = Pipe::<u32, 1>::new();
    let (tx, mut rx) = pipe.split();
    // A recv that loses the race takes nothing: the value sent afterwards is still there.
    tokio::select! {
        biased;
        _ = std::future::ready(()) => {}
        _ = rx.recv() => panic!("an empty pipe gave a value"),
    }
    tx.send(7).await.unwrap();
    // The pipe is full: a send and a reserve that lose the race leave it as it was.
    tokio::select! {
        biased;
        _ = tx.send(8) => panic!("a full pipe took a value"),
        _ = tx.reserve() => panic!("a full pipe gave a permit"),
        _ = std::future::ready(()) => {}
    }
    assert_eq!(rx.recv().await, Some(7));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "a cancelled send was delivered"
    );
    assert!(
        tx.try_reserve().is_ok(),
        "a cancelled reserve kept its slot"
    );
}

#[tokio::test]
async fn futures_joined_in_one_task_wake_each_other() {
    // As in the proxy: every end polled by one task. A producer, an echo and a consumer over
    // two pipes of two slots: each waits in turn on a full pipe (woken by a take) and an empty
    // one (woken by a send or a permit's send); a missed wake-up hangs the join.
    let mut up = Pipe::<u32, 2>::new();
    let mut down = Pipe::<u32, 2>::new();
    let (up_tx, mut up_rx) = up.split();
    let (down_tx, mut down_rx) = down.split();
    let producer = async move {
        for i in 0..100 {
            up_tx.send(i).await.unwrap();
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
    };
    let echo = async move {
        while let Some(v) = up_rx.recv().await {
            let permit = down_tx.reserve().await.unwrap();
            permit.send(v * 2);
        }
    };
    let consumer = async move {
        let mut echoed = Vec::new();
        while let Some(v) = down_rx.recv().await {
            echoed.push(v);
            if v % 11 == 0 {
                tokio::task::yield_now().await;
            }
        }
        echoed
    };
    let ((), (), echoed) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(producer, echo, consumer)
    })
    .await
    .expect("the joined futures stopped waking each other");
    assert_eq!(echoed, (0..100).map(|i| i * 2).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_receiver_waiting_in_another_task_is_woken_by_each_kind_of_send() {
    let pipe: &'static mut Pipe<u32, 4> = Box::leak(Box::new(Pipe::new()));
    let (tx, mut rx) = pipe.split();
    let (report, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let receiver = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            report.send(v).unwrap();
        }
    });
    let ten_s = Duration::from_secs(10);
    tokio::time::sleep(Duration::from_millis(20)).await;
    tx.reserve().await.unwrap().send(5);
    let got = tokio::time::timeout(ten_s, reported.recv()).await;
    assert_eq!(got.expect("not woken by a permit's send"), Some(5));
    tx.send(6).await.unwrap();
    let got = tokio::time::timeout(ten_s, reported.recv()).await;
    assert_eq!(got.expect("not woken by a send"), Some(6));
    drop(tx);
    tokio::time::timeout(ten_s, receiver)
        .await
        .expect("not woken by the sender's end")
        .unwrap();
}

#[tokio::test]
async fn a_sender_waiting_in_another_task_is_woken_by_room_and_by_the_close() {
    let pipe: &'static mut Pipe<u32, 1> = Box::leak(Box::new(Pipe::new()));
    let (tx, mut rx) = pipe.split();
    tx.send(1).await.unwrap();
    let sender = tokio::spawn(async move {
        let second = tx.send(2).await;
        let third = tx.reserve().await.map(|p| p.send(3));
        let fourth = tx.send(4).await;
        (
            second.is_ok(),
            third.is_ok(),
            fourth.map_err(|SendError(v)| v),
        )
    });
    let ten_s = Duration::from_secs(10);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(rx.recv().await, Some(1)); // room for 2
    let got = tokio::time::timeout(ten_s, rx.recv()).await;
    assert_eq!(got.expect("not woken by room"), Some(2)); // room for 3's permit
    tokio::time::sleep(Duration::from_millis(20)).await;
    // 3 is queued (if the permit's wait was woken) and 4 waits for room: the close ends it.
    drop(rx);
    let got = tokio::time::timeout(ten_s, sender)
        .await
        .expect("the waiting sender was not woken")
        .unwrap();
    assert_eq!(got, (true, true, Err(4)));
}

#[tokio::test]
async fn a_pipe_split_again_is_open_and_empty() {
    let mut pipe = Pipe::<u32, 2>::new();
    {
        let (tx, rx) = pipe.split();
        tx.send(1).await.unwrap();
        drop(rx);
    }
    let (tx, mut rx) = pipe.split();
    assert!(!tx.is_closed());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(2).await.unwrap();
    assert_eq!(rx.recv().await, Some(2));
}
